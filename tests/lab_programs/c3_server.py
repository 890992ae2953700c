# 借助第三方的模块
import socket

server = socket.socket(family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0)
addr = "127.0.0.1"
prot = 9696
server.bind((addr, prot))
server.listen(5)
# 这部分和04文件夹一样 创建了socket对象并绑定好了地址和端口

while True:
    # 用来获取到不同的客户端连接对象
    client_socket, client_addr = server.accept()
    # 一旦有客户端链接进来 就有socket可以进行通信了
    while True:
        # 持续的和当前链接好的客户端进行交互
        data_from_client = client_socket.recv(1024)
        print(f"data_from_client :>>>> {data_from_client.decode()}")
        data_to_client = data_from_client.decode().upper()
        client_socket.send(data_to_client.encode("utf-8"))
        # 把进来的对象变大写后发了出去
