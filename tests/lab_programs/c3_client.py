# 借助第三方模块
import socket

client = socket.socket()
addr = "127.0.0.1"
prot = 9696
client.connect((addr, prot))
# 和04文件夹一样 创建了socket对象并连接到了服务器


while True:
    data_to_server = input("请输入给服务端的数据 :>>>> ").strip()
    client.send(data_to_server.encode("utf-8"))
    # 输入数据转成字节发送到服务器
    data_from_server = client.recv(1024)
    # 通过recv接收了服务器的相应并打印出来了
    print(f"data_from_server :>>>> {data_from_server.decode()}")
