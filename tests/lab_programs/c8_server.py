# 借助第三方的模块
import socket

server = socket.socket(family=socket.AF_INET, type=socket.SOCK_STREAM, proto=0)
addr = "127.0.0.1"
prot = 9696
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # 就是它，在bind前加
# 允许端口重用
server.bind((addr, prot))
server.listen(5)
while True:
    # 用来获取到不同的客户端连接对象
    client_socket, client_addr = server.accept()
    print(f"客户端地址：{client_addr}")
    while True:
        try:
            # 持续的和当前链接好的客户端进行交互
            data_from_client = client_socket.recv(1024)
            # 判断客户端是否已经断开连接 如果客户端断开连接则这里接收到的数据是 空 就会一直循环
            if not data_from_client:
                break

            result = data_from_client.decode()
            if result == "q":
                break

            print(f"data_from_client :>>>> {result}")
            data_to_client = input("请输入给客户端的数据 :>>>> ").strip()

            client_socket.send(data_to_client.encode("utf-8"))
        except Exception as e:
            break
    client_socket.close()
server.close()
